"""replica.personalize"""
