-- Live progress: each step's state changes and the driver's output lines as they
-- happen, so that any replica can stream them to a browser while another one runs
-- the job. Readers follow a request by id: (request_id, id) gives "what came after
-- the last event I saw" in one range.
CREATE TABLE request_progress (
    id          BIGSERIAL PRIMARY KEY,
    request_id  BIGINT NOT NULL REFERENCES requests (id),
    step_id     BIGINT NOT NULL REFERENCES job_steps (id),
    -- `step` (text: the step's new state) or `line` (text: one line of output).
    kind        TEXT NOT NULL,
    text        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX request_progress_by_request ON request_progress (request_id, id);
