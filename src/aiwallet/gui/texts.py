"""User-visible text in one place (headings, explanations, notifications)."""

from __future__ import annotations

APP_TITLE = "aiwallet"
PAGES = ("Overview", "Apps", "Activity", "Providers and keys", "Wallet", "Settings")

PAUSE_ALL = "Pause all AI spending"
RESUME_ALL = "Resume AI spending"
PAUSED_BANNER = (
    "All AI spending is paused. Every app gets a 'wallet_paused' error until you resume."
)

NO_WALLET_BUDGET = "No wallet budget: each app is limited only by its own budget."
CONNECT_HINT = (
    "Point any OpenAI or Anthropic SDK here with an app key (Apps ▸ New app). "
    "A program that calls without a key is held while the wallet asks you."
)
OPENAI_SNIPPET = (
    'from openai import OpenAI\nclient = OpenAI(base_url="{url}/v1", api_key="aw_app_...")'
)
ANTHROPIC_SNIPPET = (
    'from anthropic import Anthropic\nclient = Anthropic(base_url="{url}", api_key="aw_app_...")'
)
BALANCES_NOTE = (
    "OpenAI and Anthropic do not publish account credit through their APIs; "
    "check their billing pages. The wallet shows what it spent for you."
)

FALLBACK_VAULT_WARNING = (
    "No OS keyring was found, so provider keys are kept in a file sealed with your "
    "passphrase. It is safe at rest, but the passphrase is needed at every start."
)

SEAL_CHOOSE_TITLE = "Choose a passphrase for your wallet"
SEAL_CHOOSE = (
    "No OS keyring was found on this machine, so the wallet keeps your provider keys and its "
    "receipt-signing key in a file sealed with a passphrase you choose now:"
)
SEAL_NO_RECOVERY = (
    "The passphrase cannot be recovered. If you lose it, delete that file and add your "
    "provider keys again (apps keep their names, budgets and history). It is asked at every "
    "start; headless use reads it from AIWALLET_VAULT_PASSPHRASE."
)
UNSEAL_TITLE = "Unlock the wallet"
UNSEAL_TEXT = (
    "Your provider keys and the wallet's receipt-signing key are sealed with your passphrase "
    "in this file:"
)
SEAL_EMPTY = "Type a passphrase."
SEAL_SHORT = "Choose at least {n} characters."
SEAL_MISMATCH = "The two passphrases differ. Type the same one twice."
SEAL_WRONG = "That passphrase does not open the sealed file. Try again."
SEAL_ENV_WRONG = "AIWALLET_VAULT_PASSPHRASE does not open the sealed file. Type the passphrase."
SEAL_CHECKING = "Checking the passphrase (the key derivation takes a second)…"
SEAL_SEALING = "Sealing the new file (the key derivation takes a second)…"
KEYRING_USED = "Provider keys are kept in the OS keyring ({store}); no passphrase is needed."

FIRST_STEPS_TITLE = "Get started"
FIRST_STEPS = (
    "Add a provider: an OpenAI or Anthropic API key, under Providers and keys.",
    "Create an app (Apps ▸ New app) or run a script that calls the URL below without a key: "
    "the wallet asks you.",
    "See it here: its requests and spend show on this page and under Activity.",
)

PROMPT_TITLE = "An app wants to use your AI wallet"
PROMPT_WANTS = "wants to use your AI wallet. That name is its own claim: check the program below."
PROMPT_KEYLESS = (
    "called your AI wallet without an app key; it is named by the program the OS reports."
)
PROMPT_EXPENSIVE_TITLE = "A request is over your ask-before threshold"
PROMPT_EXPENSIVE = (
    "is an app you already allowed. The worst case of this one request is over your "
    "{threshold} ask-before threshold{whose}: it waits for your answer, and nothing is "
    "reserved meanwhile."
)
PROMPT_COST = "{cost} at most for this request ({model}, up to {tokens} output tokens)"
PROMPT_ANY_MODEL = "Any model this wallet serves ({n} models{names})"
PROMPT_NO_MODEL = "Name at least one model, or choose any model this wallet serves"
PROMPT_WHY = "Why (its words)"
PROMPT_NO_PURPOSE = "It did not say."
PROMPT_REMEMBER = "Remember a denial: never ask again for this program"
PROMPT_COUNTDOWN = "Denies once in {s} s unless you answer"
PROMPT_STOPPED = "Countdown stopped: take your time"

ENGINE_STARTING = "Starting the engine…"
ENGINE_FAILED = "The engine is not running: {error}"

NOTIFY_BUDGET = "{app} has used {pct}% of its budget ({spent} of {budget})"
NOTIFY_BUDGET_FULL = "{app} reached its budget of {budget}; its requests are refused until {reset}"
NOTIFY_WALLET_FULL = "{app} was stopped by the wallet budget; raise it on the Overview page"
NOTIFY_PAUSED = "All AI spending is paused"
NOTIFY_RESUMED = "AI spending resumed"
NOTIFY_UPSTREAM = "Provider {provider} is failing ({code}); apps get errors until it recovers"
NOTIFY_OVER_RESERVED = (
    "Provider {provider} billed {cost} for one request, more than the {reserved} its limits "
    "allowed; the Activity page marks it over_reserved"
)

PROMPT_PAYMENT_TITLE = "Pay an x402 router?"
PROMPT_PAYMENT = (
    "is asking the wallet to pay an x402 router for one request. This payee has not been "
    "paid before: the wallet pays it only if you say so."
)
PROMPT_PAYMENT_AMOUNT = "{usd} ({usdc}) for this request"

WALLET_NO_KEY = (
    "The wallet pays x402 routers in USDC on Solana, from a key it keeps in its secret store "
    "(the key never leaves this machine). Create a new one, or import a key you already have."
)
WALLET_FUND = "Send USDC (and a little SOL) on {network} to this address to pay x402 routers."
WALLET_DEVNET_HINT = "Devnet is test money: get test USDC from faucet.circle.com."
WALLET_MAINNET_CONFIRM = (
    "Mainnet is REAL MONEY: every x402 payment and top-up from this wallet then spends real "
    "USDC, which cannot be taken back. Switch to Solana mainnet?"
)
WALLET_TOPUP_CONFIRM = (
    "Pay {amount} of REAL USDC from your wallet to {router} on Solana mainnet now? "
    "It cannot be taken back."
)
WALLET_CAP_NOTE = (
    "No single x402 payment above this is signed, whatever the budgets allow; each payment "
    "also counts against the app's and the wallet's budgets."
)
WALLET_NO_ROUTERS = (
    "No prepaid router. Add one with 'aiwallet providers add NAME --kind x402 --prepaid "
    "--base-url URL'."
)
WALLET_NO_TRANSFERS = "No payment yet: x402 payments and top-ups show here."
OVERVIEW_NO_SOLANA = "No Solana wallet yet: create one on the Wallet page to pay your x402 routers."

NOTIFY_PAID = "Paid {amount} to {provider}"
NOTIFY_PAID_TEXT = "{usdc} on {network}; transaction {tx}"
NOTIFY_PAY_FAILED = "A payment to {provider} failed"
NOTIFY_PAY_FAILED_TEXT = "{amount} was not billed; {reason}"
NOTIFY_UNCONFIRMED = "A payment to {provider} is not confirmed yet"
NOTIFY_UNCONFIRMED_TEXT = (
    "{amount} is billed until the chain tells whether it landed; the wallet keeps checking"
)

# -- providers: balances, key age, per-app keys, sign-in -------------------------------------
NOTIFY_BALANCE_LOW_TITLE = "Low balance: {provider}"
NOTIFY_BALANCE_LOW = "{provider} has {left} left (you asked to be told below {threshold})"
NOTIFY_KEY_OLD_TITLE = "Rotate the key of {provider}"
NOTIFY_KEY_OLD = (
    "The key of {provider} is {age} days old (reminder after {after}); rotate it on the "
    "Providers page"
)
NOTIFY_LIMIT_REACHED_TITLE = "{label} stopped {app}"
NOTIFY_LIMIT_REACHED = "{label} stopped {app} at its cap (the per-app key's own limit)"
NOTIFY_BREAKER_TITLE = "{provider} is paused"
NOTIFY_BREAKER = (
    "{provider} failed {failures} times in a row: the wallet sends it nothing until {at}, "
    "then tries one request (other providers serving the same models take its traffic)"
)
NOTIFY_SUBKEY_PROBLEM_TITLE = "Per-app key of {app} at {provider}"
NOTIFY_SUBKEY_PROBLEM = "{problem}"

SUBKEYS_EXPLAIN = "One key per app, capped at its budget by OpenRouter itself."
SUBKEYS_HOW = (
    "Paste a management key from openrouter.ai/settings/management-keys. The wallet keeps it "
    "in the secret store and uses it only to make, cap, pause and delete the apps' keys."
)
SUBKEYS_OFF = "Off: every app uses the provider's own key; the wallet's budgets alone stop them."
SUBKEYS_ON = "On: " + SUBKEYS_EXPLAIN[0].lower() + SUBKEYS_EXPLAIN[1:]
SUBKEYS_NONE_YET = "No app has a key yet: the engine makes one for each app within a minute."
SUBKEYS_NOT_HERE = "Per-app keys need an OpenRouter provider."
SUBKEYS_OFF_CONFIRM = (
    "Turn off per-app keys for {provider}? This deletes the {n} per-app keys at OpenRouter "
    "and the management key here; every app then uses {provider}'s own key."
)
SUBKEYS_DIFFER = (
    "OpenRouter counts {provider} for this key since {start}, the wallet {wallet}: they "
    "differ by more than a cent (spend the wallet never saw, or a bill off the catalog)"
)

SIGNIN_TITLE = "Connect OpenRouter"
SIGNIN_STARTING = "Starting the sign-in…"
SIGNIN_WAITING = "Finish signing in in your browser."
SIGNIN_URL_HINT = (
    "If no browser opened, open this address yourself (it works on this machine only):"
)
SIGNIN_CANCELLED = "Sign-in cancelled; nothing was stored."
SIGNIN_DONE = "Connected {provider}; its key is in the secret store."
ROTATE_DUE = "The key of {provider} is {age} old: rotate it (a new key at the provider, then here)."
COST_DIFFERS = "billed {billed} by the provider; the catalog says {catalog}"
