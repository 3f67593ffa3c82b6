-- The usage ledger: one row per API request, the daily rollup, feedback.
-- Times are Unix nanoseconds (UTC); days are "YYYY-MM-DD" text; costs are
-- integer micro-dollars.

-- +goose Up
CREATE TABLE requests (
    request_id        TEXT             NOT NULL PRIMARY KEY,
    response_id       TEXT             NOT NULL DEFAULT '',
    time_unix_nano    BIGINT           NOT NULL,
    day               TEXT             NOT NULL,
    user_id           TEXT             NOT NULL,
    end_user          TEXT             NOT NULL DEFAULT '',
    feature           TEXT             NOT NULL DEFAULT '',
    session           TEXT             NOT NULL DEFAULT '',
    model             TEXT             NOT NULL DEFAULT '',
    endpoint          TEXT             NOT NULL DEFAULT '',
    prompt_tokens     BIGINT           NOT NULL DEFAULT 0,
    cached_tokens     BIGINT           NOT NULL DEFAULT 0,
    completion_tokens BIGINT           NOT NULL DEFAULT 0,
    latency_ms        DOUBLE PRECISION NOT NULL DEFAULT 0,
    ttft_ms           DOUBLE PRECISION NOT NULL DEFAULT 0,
    status            INTEGER          NOT NULL,
    error_type        TEXT             NOT NULL DEFAULT '',
    cost_micro_usd    BIGINT           NOT NULL DEFAULT 0,
    price_version     TEXT             NOT NULL DEFAULT '',
    compute_seconds   DOUBLE PRECISION NOT NULL DEFAULT 0,
    trace_id          TEXT             NOT NULL DEFAULT ''
);
CREATE INDEX requests_response_id ON requests (response_id) WHERE response_id <> '';
CREATE INDEX requests_day ON requests (day, request_id);

CREATE TABLE daily (
    day               TEXT             NOT NULL,
    user_id           TEXT             NOT NULL,
    feature           TEXT             NOT NULL,
    model             TEXT             NOT NULL,
    requests          BIGINT           NOT NULL DEFAULT 0,
    errors            BIGINT           NOT NULL DEFAULT 0,
    prompt_tokens     BIGINT           NOT NULL DEFAULT 0,
    cached_tokens     BIGINT           NOT NULL DEFAULT 0,
    completion_tokens BIGINT           NOT NULL DEFAULT 0,
    cost_micro_usd    BIGINT           NOT NULL DEFAULT 0,
    PRIMARY KEY (day, user_id, feature, model)
);

CREATE TABLE feedback (
    id                TEXT             NOT NULL PRIMARY KEY,
    request_id        TEXT             NOT NULL,
    score             INTEGER          NOT NULL,
    label             TEXT             NOT NULL,
    value             DOUBLE PRECISION,
    comment           TEXT             NOT NULL DEFAULT '',
    user_id           TEXT             NOT NULL DEFAULT '',
    feature           TEXT             NOT NULL DEFAULT '',
    time_unix_nano    BIGINT           NOT NULL
);
CREATE INDEX feedback_time ON feedback (time_unix_nano);
CREATE INDEX feedback_request_id ON feedback (request_id);

-- +goose Down
DROP TABLE feedback;
DROP TABLE daily;
DROP TABLE requests;
