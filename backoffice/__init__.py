"""The back office at city scale: the terminals' records cleared, fares split between the
operators, blacklists sent down to the gates; over NATS JetStream or the outboxes on disk."""
