-- A morphocluster project database at schema version 1 (postgresql), as version 1 created it.
-- Written by SQLAlchemy's DDL compiler from the version-1 models; tests/test_migrate.py opens it.

CREATE TABLE imports (
	id SERIAL NOT NULL, 
	source TEXT NOT NULL, 
	format VARCHAR(32) NOT NULL, 
	started_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	finished_at TIMESTAMP WITHOUT TIME ZONE, 
	n_added INTEGER NOT NULL, 
	n_skipped INTEGER NOT NULL, 
	n_failed INTEGER NOT NULL, 
	report JSON, 
	PRIMARY KEY (id)
);

CREATE TABLE meta (
	key VARCHAR(64) NOT NULL, 
	value JSON NOT NULL, 
	PRIMARY KEY (key)
);

CREATE TABLE users (
	id SERIAL NOT NULL, 
	username VARCHAR(64) NOT NULL, 
	password_hash VARCHAR(255) NOT NULL, 
	role VARCHAR(16) NOT NULL, 
	created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (username)
);

CREATE TABLE events (
	id SERIAL NOT NULL, 
	user_id INTEGER, 
	created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	action VARCHAR(32) NOT NULL, 
	payload JSON NOT NULL, 
	undone_by INTEGER, 
	PRIMARY KEY (id), 
	FOREIGN KEY(user_id) REFERENCES users (id), 
	FOREIGN KEY(undone_by) REFERENCES events (id)
);

CREATE INDEX ix_events_action ON events (action);

CREATE INDEX ix_events_user_time ON events (user_id, id);

CREATE TABLE jobs (
	id SERIAL NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	params JSON, 
	state VARCHAR(16) NOT NULL, 
	progress FLOAT NOT NULL, 
	message TEXT, 
	error TEXT, 
	user_id INTEGER, 
	created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	finished_at TIMESTAMP WITHOUT TIME ZONE, 
	active BOOLEAN NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(user_id) REFERENCES users (id)
);

CREATE TABLE nodes (
	id SERIAL NOT NULL, 
	parent_id INTEGER, 
	name VARCHAR(255), 
	status VARCHAR(16) NOT NULL, 
	round INTEGER, 
	params JSON, 
	n_members INTEGER NOT NULL, 
	members_version INTEGER NOT NULL, 
	created_by INTEGER, 
	created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	approved_by INTEGER, 
	approved_at TIMESTAMP WITHOUT TIME ZONE, 
	claimed_by INTEGER, 
	claimed_until TIMESTAMP WITHOUT TIME ZONE, 
	PRIMARY KEY (id), 
	FOREIGN KEY(parent_id) REFERENCES nodes (id), 
	FOREIGN KEY(created_by) REFERENCES users (id), 
	FOREIGN KEY(approved_by) REFERENCES users (id), 
	FOREIGN KEY(claimed_by) REFERENCES users (id)
);

CREATE INDEX ix_nodes_name ON nodes (name);

CREATE INDEX ix_nodes_parent_id ON nodes (parent_id);

CREATE INDEX ix_nodes_status ON nodes (status);

CREATE TABLE objects (
	id SERIAL NOT NULL, 
	object_id VARCHAR(255) NOT NULL, 
	path TEXT NOT NULL, 
	width INTEGER, 
	height INTEGER, 
	meta JSON, 
	imported_label VARCHAR(255), 
	imported_status VARCHAR(16), 
	import_id INTEGER, 
	PRIMARY KEY (id), 
	UNIQUE (object_id), 
	FOREIGN KEY(import_id) REFERENCES imports (id)
);

CREATE INDEX ix_objects_imported_label ON objects (imported_label);

CREATE TABLE memberships (
	object_pk INTEGER NOT NULL, 
	node_id INTEGER NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	added_by INTEGER, 
	added_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	distance FLOAT, 
	PRIMARY KEY (object_pk), 
	FOREIGN KEY(object_pk) REFERENCES objects (id), 
	FOREIGN KEY(node_id) REFERENCES nodes (id), 
	FOREIGN KEY(added_by) REFERENCES users (id)
);

CREATE INDEX ix_memberships_node_id ON memberships (node_id);

CREATE TABLE node_cache (
	node_id INTEGER NOT NULL, 
	members_version INTEGER NOT NULL, 
	feature_set VARCHAR(64) NOT NULL, 
	data BYTEA NOT NULL, 
	computed_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	PRIMARY KEY (node_id), 
	FOREIGN KEY(node_id) REFERENCES nodes (id)
);

CREATE TABLE rejections (
	id SERIAL NOT NULL, 
	node_id INTEGER NOT NULL, 
	object_pk INTEGER NOT NULL, 
	user_id INTEGER, 
	created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (node_id, object_pk), 
	FOREIGN KEY(node_id) REFERENCES nodes (id), 
	FOREIGN KEY(object_pk) REFERENCES objects (id), 
	FOREIGN KEY(user_id) REFERENCES users (id)
);

CREATE INDEX ix_rejections_node_id ON rejections (node_id);

CREATE INDEX ix_rejections_object_pk ON rejections (object_pk);

INSERT INTO meta (key, value) VALUES ('schema_version', '1');
