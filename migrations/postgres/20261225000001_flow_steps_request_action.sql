-- PostgreSQL dialect. Keep in step with migrations/sqlite.
-- Flow metrics per what a request does: each step records whether its request
-- creates an asset (NULL) or runs a day-2 action on one (the action's name, as
-- `requests.action` holds it). A type's creations and its actions have different
-- flows (a backup is auto-approved and done in seconds, a creation is reviewed
-- and takes hours): counted together, daily backups would drive a database's
-- lead time towards seconds and hide how long a new one takes.
ALTER TABLE flow_steps ADD COLUMN request_action TEXT;
-- The page's covering indexes group by the request action too, right after the
-- type, so every read stays one range scan of an index.
DROP INDEX flow_steps_by_step;
DROP INDEX flow_steps_by_action;
DROP INDEX flow_steps_by_lead;
CREATE INDEX flow_steps_by_step ON flow_steps (week, type_name, request_action, from_state, bucket, duration_ms);
CREATE INDEX flow_steps_by_action ON flow_steps (week, type_name, request_action, action, request_id);
CREATE INDEX flow_steps_by_lead ON flow_steps (week, type_name, request_action, lead_bucket, lead_ms) WHERE lead_ms IS NOT NULL;

-- Backfill from the requests: only the steps of day-2 requests are written (a
-- creation's stay NULL, as they are), each matched to its request by the
-- request's primary key, so the statement writes the day-2 steps, not the whole
-- table; run again, it writes the same values.
UPDATE flow_steps
   SET request_action = r.action
  FROM requests r
 WHERE r.id = flow_steps.request_id AND r.action IS NOT NULL;
