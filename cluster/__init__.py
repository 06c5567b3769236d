"""replica.cluster"""
