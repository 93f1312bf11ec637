"""engine.wal"""
