"""engine.invoker"""
