-- PKCE (astra.pkce): the code_verifier of an authorization started here,
-- sealed for its user like a token (key id and nonce || ciphertext || tag),
-- kept with the state until the callback uses both.
ALTER TABLE astra_authorization_states ADD COLUMN verifier_key_id TEXT;
ALTER TABLE astra_authorization_states ADD COLUMN code_verifier BLOB;
