"""berth.runtime"""
