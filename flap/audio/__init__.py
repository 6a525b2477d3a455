"""flap.audio"""
