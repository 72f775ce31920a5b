-- A lease on an entry's refresh, so that across instances only one refreshes it at a time
-- (a provider that rotates refresh tokens revokes the grant when one is used twice).
ALTER TABLE vault_entries ADD COLUMN refresh_lease_owner TEXT;
ALTER TABLE vault_entries ADD COLUMN refresh_lease_until BIGINT;
