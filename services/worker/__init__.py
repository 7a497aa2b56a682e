"""The compute worker: reads requests, computes, replies to the requester and publishes the result."""
