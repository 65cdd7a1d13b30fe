"""The metadata schema, as numbered migrations (append only, never edit)."""

MIGRATIONS = [
    # 1: images, their names and the blobs they hold.
    """
    CREATE TABLE images (
        id TEXT PRIMARY KEY,              -- sha256:<config digest>
        manifest_digest TEXT NOT NULL,    -- the manifest blob describing config + layers
        manifest_media_type TEXT NOT NULL,
        size INTEGER NOT NULL,            -- uncompressed size of all layers
        created TEXT,                     -- from the config
        parent_id TEXT,                   -- image this one was built or committed from
        added_at REAL NOT NULL,
        last_tag_time REAL
    );
    CREATE INDEX images_parent ON images(parent_id);
    CREATE TABLE tags (
        ref TEXT PRIMARY KEY,             -- normalised name:tag
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
    );
    CREATE INDEX tags_image ON tags(image_id);
    CREATE TABLE repo_digests (
        ref TEXT PRIMARY KEY,             -- normalised name@sha256:<manifest digest>
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
    );
    CREATE INDEX repo_digests_image ON repo_digests(image_id);
    CREATE TABLE layers (
        digest TEXT PRIMARY KEY,          -- the stored (compressed) blob
        diff_id TEXT NOT NULL,            -- sha256 of the uncompressed tar
        size INTEGER NOT NULL,            -- uncompressed bytes
        media_type TEXT NOT NULL
    );
    CREATE INDEX layers_diff_id ON layers(diff_id);
    CREATE TABLE image_blobs (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        digest TEXT NOT NULL,
        PRIMARY KEY (image_id, digest)
    );
    CREATE INDEX image_blobs_digest ON image_blobs(digest)
    """,
]

MIGRATIONS.append(
    # 2: containers and volumes.  A container's configuration is written once
    # at create (rename aside); its state changes with every lifecycle event.
    """
    CREATE TABLE containers (
        id TEXT PRIMARY KEY,              -- 64 hex digits
        name TEXT NOT NULL UNIQUE,        -- without Docker's leading slash
        image_id TEXT NOT NULL REFERENCES images(id),
        created REAL NOT NULL,
        status TEXT NOT NULL,             -- created running paused restarting removing exited dead
        config TEXT NOT NULL,             -- JSON: Config, HostConfig, names, paths
        state TEXT NOT NULL               -- JSON: Docker's State object
    );
    CREATE INDEX containers_image ON containers(image_id);
    CREATE TABLE volumes (
        name TEXT PRIMARY KEY,
        driver TEXT NOT NULL,
        created REAL NOT NULL,
        labels TEXT NOT NULL,             -- JSON object
        options TEXT NOT NULL,            -- JSON object
        anonymous INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE volume_users (
        volume TEXT NOT NULL REFERENCES volumes(name),
        container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        PRIMARY KEY (volume, container_id)
    )
    """
)
