"""flap.eval"""
