"""flap.io"""
