"""What the fleet did and said: the events log, the LLM traffic reader and
the MITM capture decryption. Plain domain code; no Textual here."""
