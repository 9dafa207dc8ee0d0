/**
 * Auth0 Action for the `custom-phone-provider` trigger: hands the code Auth0 generated to
 * phone-otp-gateway, which routes it by country, fails over between providers, and applies
 * the destination policy and send limits.
 *
 * Secrets (Action > Secrets):
 *   GATEWAY_URL    e.g. https://otp.example.com (no trailing slash)
 *   GATEWAY_TOKEN  the token named by `[auth0] token_env` in the gateway's config
 *
 * The gateway answers 2xx when a provider accepted the message, 429 or 5xx when trying
 * again may work (Auth0 then retries up to 5 times), other 4xx when it cannot (a bad or
 * refused number): the message is dropped.
 */
exports.onExecuteCustomPhoneProvider = async (event, api) => {
  const notification = event.notification;
  const body = {
    recipient: notification.recipient,
    delivery_method: notification.delivery_method,
    message_type: notification.message_type,
    code: notification.code,
    as_text: notification.as_text,
    as_voice: notification.as_voice,
    locale: notification.locale,
    user_id: event.user && event.user.user_id,
    client_ip: event.request && event.request.ip,
  };

  let response;
  try {
    response = await fetch(`${event.secrets.GATEWAY_URL}/hooks/auth0/phone-message`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${event.secrets.GATEWAY_TOKEN}`,
      },
      body: JSON.stringify(body),
      // Well under the 20 s an Action may run.
      signal: AbortSignal.timeout(10000),
    });
  } catch (error) {
    api.notification.retry(`phone-otp-gateway unreachable (${error.name})`);
    return;
  }
  if (response.ok) {
    return;
  }

  let reason = `phone-otp-gateway answered ${response.status}`;
  try {
    const answer = await response.json();
    if (answer && answer.error && answer.error.code) {
      reason += ` ${answer.error.code}: ${answer.error.message}`;
    }
  } catch (_) {
    // Not JSON: the status says enough.
  }
  if (response.status === 429 || response.status >= 500) {
    api.notification.retry(reason.slice(0, 1024));
  } else {
    api.notification.drop(reason.slice(0, 1024));
  }
};
