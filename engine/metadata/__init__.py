"""engine.metadata"""
