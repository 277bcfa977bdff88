-- "Waiting now" counts what the flow metrics' page counts: creations, one day-2
-- action, or every request. The request's `action` joins the index so that
-- narrowing to one of them still reads the index alone, for the steps of the
-- flow only. Built before the old one is dropped: on PostgreSQL the drop's
-- exclusive lock (which stops reads of `requests`) is taken last, for an
-- instant, instead of for the whole build.
CREATE INDEX requests_state_entered_action ON requests (state, updated_at, type_name, action);
DROP INDEX requests_state_entered;
