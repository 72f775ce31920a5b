//! Human hints for errors users meet most with Microsoft Entra ID (measured facts, see the
//! project notes): the `AADSTSnnnnn` code in an `error_description` maps to what to check.

/// A hint for an error text that carries an `AADSTS` code tokenflow knows.
pub fn aadsts_hint(text: &str) -> Option<String> {
    let start = text.find("AADSTS")? + "AADSTS".len();
    let code: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let hint = match code.as_str() {
        "50011" => {
            "the redirect URI does not match the app registration exactly (scheme, host, port, path)"
        }
        "50076" | "50079" => {
            "multi-factor authentication is required: the user must sign in interactively"
        }
        "53003" => "blocked by a Conditional Access policy of the tenant",
        "65001" => {
            "consent is required: sign in with use_prompt (prompt=consent) or have an admin grant consent"
        }
        "70008" | "700082" => {
            "the refresh token expired or was inactive too long: the user must sign in again"
        }
        "7000215" => {
            "invalid client secret: check the secret's value (not its id) and that it has not expired"
        }
        "700016" => {
            "the application (client id) was not found in this tenant: check client_id and the tenant in the issuer"
        }
        "28000" | "70011" => {
            "invalid scope: client credentials need `<resource>/.default`, one resource per request"
        }
        "901002" => {
            "the v2 endpoint does not accept `resource`: remove it from extra_token_params or use the v1 endpoint"
        }
        _ => return None,
    };
    Some(format!("Entra ID AADSTS{code}: {hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_get_hints_and_others_do_not() {
        let hint = aadsts_hint("invalid_grant: AADSTS70008: The provided authorization code or refresh token has expired").unwrap();
        assert!(
            hint.contains("AADSTS70008") && hint.contains("sign in again"),
            "{hint}"
        );
        assert!(
            aadsts_hint("AADSTS50011: The redirect URI")
                .unwrap()
                .contains("redirect URI")
        );
        assert!(aadsts_hint("AADSTS99999: something").is_none());
        assert!(aadsts_hint("invalid_client").is_none());
    }
}
