"""berth.store"""
