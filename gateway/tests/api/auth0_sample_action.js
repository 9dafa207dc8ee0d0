// The shape of Auth0's published example custom-phone-provider Action (INTEGRATIONS.md
// 2.3), written here for the test: it posts a JSON body with only an `authorization`
// header, so Node's fetch labels it `text/plain;charset=UTF-8`, and it only logs the
// answer. The README says this sample works unchanged against the gateway.
'use strict';

exports.onExecuteCustomPhoneProvider = async (event, api) => {
  const notification = event.notification;
  const body = {
    from: notification.from,
    action: notification.message_type === 'otp_enroll' ? 'enrollment' : 'second-factor-authenticator',
    language: notification.locale,
    recipient: notification.recipient,
    message_type: notification.delivery_method,
    text: notification.as_text,
    code: notification.code,
  };
  const response = await fetch(`${event.secrets.GATEWAY_URL}/hooks/auth0/phone-message`, {
    method: 'POST',
    headers: { authorization: `Bearer ${event.secrets.GATEWAY_TOKEN}` },
    body: JSON.stringify(body),
  });
  console.log(`gateway answered ${response.status}: ${await response.text()}`);
};
