"""engine.storage"""
