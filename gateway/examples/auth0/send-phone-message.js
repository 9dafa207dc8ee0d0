/**
 * Auth0 Action for the legacy `send-phone-message` trigger (MFA only): the same delivery
 * through phone-otp-gateway. Prefer `custom-phone-provider.js`; Auth0 says this trigger
 * should not be used for a custom phone provider.
 *
 * Secrets: GATEWAY_URL, GATEWAY_TOKEN (as in custom-phone-provider.js).
 *
 * This trigger has no retry or drop: a failure is thrown, so Auth0 logs
 * `gd_send_sms_failure` and the user sees that the message could not be sent.
 */
exports.onExecuteSendPhoneMessage = async (event, api) => {
  const options = event.message_options;
  const voice = options.message_type === 'voice';
  const body = {
    recipient: options.recipient,
    delivery_method: voice ? 'voice' : 'text',
    message_type: options.action === 'enrollment' ? 'otp_enroll' : 'otp_verify',
    code: options.code,
    [voice ? 'as_voice' : 'as_text']: options.text,
    locale: event.request && event.request.language,
    user_id: event.user && event.user.user_id,
    client_ip: event.request && event.request.ip,
  };

  const response = await fetch(`${event.secrets.GATEWAY_URL}/hooks/auth0/phone-message`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${event.secrets.GATEWAY_TOKEN}`,
    },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10000),
  });
  if (!response.ok) {
    let detail = '';
    try {
      const answer = await response.json();
      detail = answer && answer.error ? ` ${answer.error.code}` : '';
    } catch (_) {
      // Not JSON.
    }
    throw new Error(`phone-otp-gateway answered ${response.status}${detail}`);
  }
};
