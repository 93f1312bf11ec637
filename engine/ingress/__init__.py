"""engine.ingress"""
