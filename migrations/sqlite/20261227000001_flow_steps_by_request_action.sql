-- The flow page reads the closed weeks of its window once and the current week
-- at each change; a count of distinct requests over the whole window then
-- takes off the requests with the same action on both sides, each found by
-- looking up its earlier steps of that action: one seek here, however many
-- steps the request has (a request retried for months has thousands). Its
-- type and request action end the key, so the lookup reads no table row.
CREATE INDEX flow_steps_by_request_action ON flow_steps (request_id, action, week, type_name, request_action);
