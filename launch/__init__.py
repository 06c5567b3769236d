"""replica.launch"""
