-- The flow metrics' "waiting now" ranks each step's open requests by when they
-- entered it (`updated_at`, which only a state change moves): read from this
-- index alone for the steps of the flow, not from every request ever made.
CREATE INDEX requests_state_entered ON requests (state, updated_at, type_name);
