-- River main line, version 1 (River's DDL, rewritten from its catalog and documented facts).
CREATE TABLE river_migration(
    id bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    version bigint NOT NULL,
    CONSTRAINT version CHECK (version >= 1)
);

CREATE UNIQUE INDEX ON river_migration USING btree(version);
