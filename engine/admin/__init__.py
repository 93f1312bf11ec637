"""engine.admin"""
