"""flap.control"""
