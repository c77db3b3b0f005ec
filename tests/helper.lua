-- busted helper: makes every spec deterministic where it can be.
math.randomseed(20261130)
