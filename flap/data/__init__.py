"""flap.data"""
