-- SPEC §4: usernames are refused when confusable with an existing one (Unicode TR39 skeletons).
-- The skeleton is computed in code (src/accounts/usernames.ts, confusables.txt via unhomoglyph), so
-- this migration cannot fill it: existing rows start NULL and every start-up fills them, oldest
-- first (src/db/users.ts fillMissingSkeletons). A row whose skeleton an older row already holds stays
-- NULL, so existing look-alikes do not fail the upgrade; they are logged at start for an admin to
-- rename. New and renamed users always get one, and the unique index is what refuses a look-alike,
-- also between two concurrent requests. NULLs are distinct, so they never conflict.
ALTER TABLE users ADD COLUMN username_skeleton text;
CREATE UNIQUE INDEX users_username_skeleton_key ON users (username_skeleton);
-- The start-up fill reads only these.
CREATE INDEX users_username_skeleton_missing_idx ON users (seq) WHERE username_skeleton IS NULL;
