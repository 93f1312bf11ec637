"""engine.partition"""
