"""flap.training"""
