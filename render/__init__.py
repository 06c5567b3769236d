"""replica.render"""
