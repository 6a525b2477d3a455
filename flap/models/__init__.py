"""flap.models"""
