-- Runs hold a lease while an instance executes them; a run whose lease expired was interrupted
-- (its instance died) and another instance marks it.
ALTER TABLE runs ADD COLUMN lease_owner TEXT;
ALTER TABLE runs ADD COLUMN lease_until INTEGER;
