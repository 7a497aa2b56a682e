// A result rendered in answer to the form's POST: show its permalink in the address bar, so that
// reloading the page shows the same result instead of submitting the form again.
const permalink = document.body.dataset.permalink;
if (permalink && window.location.pathname !== permalink) {
  window.history.replaceState(null, "", permalink);
}

// "All" and "None" buttons for the operation checkboxes.
for (const button of document.querySelectorAll("[data-check]")) {
  button.addEventListener("click", () => {
    for (const box of document.querySelectorAll("input[name=operations]")) {
      box.checked = button.dataset.check === "all";
    }
  });
}

// Pages that change by themselves mark their <main> with data-live (the URL to ask again):
// - a pending result: a long poll (the URL has ?wait=) that the server holds until the result is
//   there; its answer replaces the page in place, with focus on the new heading for screen readers;
// - the status page (data-live-every seconds), while "Keep updating" is ticked.
// Without JavaScript, both reload themselves through a <noscript> refresh instead.
const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

// The new page's <main> from an answer, or null when the answer is another page altogether (a sign-in
// page after the session ended, say): then the browser goes there as it would by a link.
async function nextMain(response) {
  const next = new DOMParser().parseFromString(await response.text(), "text/html");
  const main = next.querySelector("main");
  if (response.redirected || !main) {
    window.location.assign(response.url);
    return null;
  }
  document.title = next.title;
  return main;
}

async function awaitResult(main) {
  while (main && main.dataset.live && !main.dataset.liveEvery) {
    const asked = Date.now();
    let response = null;
    try {
      response = await fetch(main.dataset.live, { headers: { Accept: "text/html" } });
    } catch {
      // The network or the proxy in the way: ask again shortly.
    }
    if (response && response.status === 202) {
      // Still pending. A server with no free waiting slot answers at once: then wait as it says.
      if (Date.now() - asked < 1000) await sleep(Number(response.headers.get("Retry-After")) || 1);
      continue;
    }
    if (!response || response.status === 429 || response.status >= 500) {
      await sleep(2);
      continue;
    }
    const next = await nextMain(response);
    if (!next) return;
    main.replaceWith(next);
    main = next;
    const heading = main.querySelector("h1");
    heading.tabIndex = -1;
    heading.focus();
  }
}

// The status page: the reader's place survives each update (open <details>, which hold the charts'
// values as tables, and the focused control), and so does a pause asked while an update was on its way.
let paused = false;
document.addEventListener("change", (event) => {
  if (event.target.id === "live-updates") paused = !event.target.checked;
});

function replaceKeepingPlace(main, next) {
  const opened = [...main.querySelectorAll("details")].map((details) => details.open);
  const controls = (root) => [...root.querySelectorAll("a, button, input, summary")];
  const focused = controls(main).indexOf(document.activeElement);
  main.replaceWith(next);
  const details = [...next.querySelectorAll("details")];
  if (details.length === opened.length) details.forEach((element, i) => { element.open = opened[i]; });
  next.querySelector(".live-control").hidden = false;
  next.querySelector("#live-updates").checked = !paused;
  if (focused >= 0 && controls(next)[focused]) controls(next)[focused].focus();
}

async function keepUpdating(main) {
  const every = Number(main.dataset.liveEvery) || 5;
  for (;;) {
    await sleep(every);
    if (paused) continue;
    let response = null;
    try {
      response = await fetch(main.dataset.live, { headers: { Accept: "text/html" } });
    } catch {
      continue; // shown again at the next round
    }
    if (!response.ok && !response.redirected) continue;
    const next = await nextMain(response);
    if (!next) return;
    if (!next.dataset.liveEvery) {
      window.location.reload(); // not the status page any more (e.g. no longer an admin)
      return;
    }
    if (paused) continue; // paused while the update was on its way
    replaceKeepingPlace(main, next);
    main = next;
  }
}

const liveMain = document.querySelector("main[data-live]");
if (liveMain && liveMain.dataset.liveEvery) {
  liveMain.querySelector(".live-control").hidden = false;
  keepUpdating(liveMain);
} else if (liveMain) {
  awaitResult(liveMain);
}

// Times: the server writes them in UTC and as "2 minutes ago" in the page's language; here the full
// time on hover becomes the viewer's own time zone, and "ago" stays current while the page is open.
const language = document.documentElement.lang || "en";
const fullTime = new Intl.DateTimeFormat(language, { dateStyle: "medium", timeStyle: "long" });
const relative = new Intl.RelativeTimeFormat(language, { numeric: "auto" });
const units = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];

function showTimes() {
  for (const time of document.querySelectorAll("time[datetime]")) {
    const moment = new Date(time.dateTime);
    if (Number.isNaN(moment.getTime())) continue;
    time.title = fullTime.format(moment);
    const seconds = (moment.getTime() - Date.now()) / 1000;
    const [unit, size] = units.find(([, size]) => Math.abs(seconds) >= size) || units[units.length - 1];
    const text = relative.format(Math.round(seconds / size), unit);
    // Only on change: this runs on every change of the page (the observer below), its own included.
    if (time.textContent !== text) time.textContent = text;
  }
}
showTimes();
setInterval(showTimes, 30_000);
new MutationObserver(showTimes).observe(document.body, { childList: true, subtree: true });
