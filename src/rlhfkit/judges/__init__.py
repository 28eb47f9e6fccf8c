"""Judges: who scores a response. One spelling, a reward spec, for online RL's reward, evaluation's
judge and proxy, and best-of-n's selector (`reward_spec`: gold, a reward-model folder, module:function,
or a weighted sum of them). AI judges guided by a constitution will live here too.
"""
