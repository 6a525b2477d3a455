"""flap.tracking"""
