-- The drift monitor's history (quality.DriftMonitor), one row per served
-- model, so that a restarted daemon keeps its baseline window. state is the
-- history as JSON; saved_unix_nano is when it was last saved (Unix
-- nanoseconds, UTC).

-- +goose Up
CREATE TABLE drift_state (
    model             TEXT             NOT NULL PRIMARY KEY,
    saved_unix_nano   BIGINT           NOT NULL,
    state             TEXT             NOT NULL
);

-- +goose Down
DROP TABLE drift_state;
