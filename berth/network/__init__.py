"""berth.network"""
