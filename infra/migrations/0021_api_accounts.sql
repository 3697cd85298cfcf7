-- 0021: accounts opened through the HTTP API (issue 9), one row per account, owned by one tenant.
-- The holder's mobile number is never stored: only its keyed Raast alias token (producers/api/privacy.py).
-- Balances are not here: the ledger keeps them in ledger_accounts, under the same id.
CREATE TABLE IF NOT EXISTS api_accounts (
    id          text PRIMARY KEY
                CONSTRAINT api_accounts_id_shape CHECK (id ~ '^acc_[0-9a-f]{32}$'),
    tenant_id   text NOT NULL REFERENCES api_tenants (id),
    kind        text NOT NULL
                CONSTRAINT api_accounts_kind CHECK (kind IN ('citizen_wallet', 'citizen_bank', 'merchant')),
    alias_token text NOT NULL
                CONSTRAINT api_accounts_alias_token_shape CHECK (alias_token ~ '^rst_[0-9a-f]{32}$'),
    iban        text
                CONSTRAINT api_accounts_iban_key UNIQUE
                CONSTRAINT api_accounts_iban_shape CHECK (iban ~ '^PK[0-9]{2}[A-Z]{4}[0-9]{16}$'),
    district    text NOT NULL CONSTRAINT api_accounts_district_length CHECK (char_length(district) BETWEEN 2 AND 48),
    gender      text CONSTRAINT api_accounts_gender CHECK (gender IN ('female', 'male', 'other')),
    category    text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- A Raast alias names one account: within a tenant, one mobile number opens one account.
    CONSTRAINT api_accounts_tenant_alias_key UNIQUE (tenant_id, alias_token),
    CONSTRAINT api_accounts_citizen_fields CHECK (
        (kind = 'merchant' AND category IS NOT NULL AND gender IS NULL)
        OR (kind <> 'merchant' AND gender IS NOT NULL AND category IS NULL)
    ),
    CONSTRAINT api_accounts_bank_iban CHECK ((kind = 'citizen_bank') = (iban IS NOT NULL))
);

-- Listing a tenant's accounts, newest first (GET /v1/accounts, to come).
CREATE INDEX IF NOT EXISTS api_accounts_tenant_created ON api_accounts (tenant_id, created_at DESC, id);
