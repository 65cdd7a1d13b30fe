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

MIGRATIONS.append(
    # 3: networks.  An attachment says a container belongs to a network; its
    # endpoint columns (address, veth) are set only while the container's
    # network namespace exists.  Attachments, links and published ports are
    # not tied to the containers table by a foreign key: they are released
    # after a container's row is gone, and swept then.
    """
    CREATE TABLE networks (
        id TEXT PRIMARY KEY,              -- 64 hex digits
        name TEXT NOT NULL UNIQUE,
        driver TEXT NOT NULL,             -- bridge, host, null
        created REAL NOT NULL,
        subnet TEXT,                      -- CIDR, chosen at create (at first use for "bridge")
        gateway TEXT,
        subnet_auto INTEGER NOT NULL DEFAULT 1,   -- berth chose it: may move while the network is unused
        internal INTEGER NOT NULL DEFAULT 0,
        attachable INTEGER NOT NULL DEFAULT 0,
        labels TEXT NOT NULL DEFAULT '{}',
        options TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE network_attachments (
        network_id TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
        container_id TEXT NOT NULL,
        aliases TEXT NOT NULL DEFAULT '[]',   -- JSON: --network-alias
        position INTEGER NOT NULL DEFAULT 0,  -- order of connection: eth0, eth1, ...
        endpoint_id TEXT,
        ip TEXT,
        mac TEXT,
        veth TEXT,                        -- host side of the pair
        activated REAL,
        PRIMARY KEY (network_id, container_id)
    );
    CREATE UNIQUE INDEX network_attachments_ip ON network_attachments(network_id, ip);
    CREATE INDEX network_attachments_container ON network_attachments(container_id);
    CREATE TABLE container_links (
        container_id TEXT NOT NULL,       -- the linking container
        alias TEXT NOT NULL,
        target_id TEXT NOT NULL,
        network_id TEXT NOT NULL,
        PRIMARY KEY (container_id, alias)
    );
    CREATE TABLE published_ports (
        container_id TEXT NOT NULL,
        proto TEXT NOT NULL,              -- tcp, udp, sctp
        container_port INTEGER NOT NULL,
        host_ip TEXT NOT NULL,            -- '' for every address
        host_port INTEGER NOT NULL,
        PRIMARY KEY (proto, host_ip, host_port)
    );
    CREATE INDEX published_ports_container ON published_ports(container_id);
    INSERT INTO networks (id, name, driver, created)
        VALUES (lower(hex(randomblob(32))), 'bridge', 'bridge', (julianday('now') - 2440587.5) * 86400.0);
    INSERT INTO networks (id, name, driver, created)
        VALUES (lower(hex(randomblob(32))), 'host', 'host', (julianday('now') - 2440587.5) * 86400.0);
    INSERT INTO networks (id, name, driver, created)
        VALUES (lower(hex(randomblob(32))), 'none', 'null', (julianday('now') - 2440587.5) * 86400.0)
    """
)
