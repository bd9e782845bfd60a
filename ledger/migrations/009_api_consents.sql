-- What a cardholder consented to when claiming a card with a profile
-- (GDPR article 7: the organizer must be able to show the consent): the
-- purpose, the version of the privacy notice shown, and when. Shown in the
-- profile's export; erasure deletes the rows with the profile.
CREATE TABLE api_consents (
    org_id         bigint NOT NULL,
    profile_id     uuid NOT NULL,
    card_id        bytea NOT NULL,
    purpose        text NOT NULL,
    notice_version text NOT NULL,
    given_at       timestamptz NOT NULL,
    PRIMARY KEY (org_id, profile_id, card_id, purpose)
);
