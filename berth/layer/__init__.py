"""berth.layer"""
