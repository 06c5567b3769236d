"""replica.foundation"""
