-- "Waiting now" counts what the flow metrics' page counts: creations, one day-2
-- action, or every request. The request's `action` joins the index so that
-- narrowing to one of them still reads the index alone, for the steps of the
-- flow only.
DROP INDEX requests_state_entered;
CREATE INDEX requests_state_entered ON requests (state, updated_at, type_name, action);
