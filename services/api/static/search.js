/* Suggestions under the header's search box (progressive enhancement: without this script the
   form submits to /recherche). As the reader types (2 characters or more, 150 ms after the last
   key), asks /api/v1/search and shows the territories found as an ARIA combobox with a listbox:
   arrow keys move through the options, Enter or a click opens the highlighted territory,
   Escape closes the list, Enter with nothing highlighted submits the form. */
(function () {
  "use strict";
  var input = document.getElementById("recherche-q");
  if (!input || !window.fetch || !input.form) { return; }
  var form = input.form;
  var DELAY_MS = 150;
  var MIN_CHARS = 2;
  var LIMIT = 8;

  var list = document.createElement("ul");
  list.id = "recherche-suggestions";
  list.className = "suggestions";
  list.setAttribute("role", "listbox");
  list.setAttribute("aria-label", "Territoires suggérés");
  list.hidden = true;
  var status = document.createElement("p");
  status.id = "recherche-statut";
  status.className = "sr";
  status.setAttribute("aria-live", "polite");
  (input.parentNode || form).appendChild(list);
  form.appendChild(status);

  input.setAttribute("role", "combobox");
  input.setAttribute("aria-autocomplete", "list");
  input.setAttribute("aria-expanded", "false");
  input.setAttribute("aria-controls", list.id);

  var timer = null;
  var asked = 0;        // number of the latest request: older answers are dropped
  var controller = null;
  var active = -1;      // index of the highlighted option, -1: none
  var shownFor = null;  // the query the options answer

  function options() { return list.querySelectorAll(".suggestion"); }

  function setActive(index) {
    var all = options();
    for (var i = 0; i < all.length; i++) {
      all[i].setAttribute("aria-selected", i === index ? "true" : "false");
      all[i].classList.toggle("active", i === index);
    }
    active = index;
    if (index >= 0 && all[index]) {
      input.setAttribute("aria-activedescendant", all[index].id);
      if (all[index].scrollIntoView) { all[index].scrollIntoView({ block: "nearest" }); }
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function close() {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    setActive(-1);
  }

  function open() {
    if (!options().length) { return; }
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
  }

  function places(item) {
    if (item.kind === "reg") { return ""; }
    var names = item.kind === "dep"
      ? item.regions.map(function (r) { return r.name; })
      : item.departements.map(function (d) { return d.name + " (" + d.code + ")"; });
    return names.join(", ");
  }

  function span(className, text) {
    var el = document.createElement("span");
    el.className = className;
    el.textContent = text;
    return el;
  }

  function show(items, query) {
    while (list.firstChild) { list.removeChild(list.firstChild); }
    shownFor = query;
    list.setAttribute("data-query", query);  // which query the options answer (for tests too)
    items.forEach(function (item, i) {
      var li = document.createElement("li");
      li.id = "recherche-suggestion-" + i;
      li.className = "suggestion";
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", "false");
      li.setAttribute("data-url", item.url);
      li.appendChild(span("suggestion-name", item.name));
      var where = places(item);
      li.appendChild(span("suggestion-meta", item.category_label + (where ? " · " + where : "")));
      list.appendChild(li);
    });
    setActive(-1);
    if (items.length) {
      open();
      status.textContent = items.length + (items.length > 1 ? " suggestions" : " suggestion") +
        " ; flèches haut et bas pour les parcourir, Entrée pour ouvrir.";
    } else {
      close();
      status.textContent = "Aucun territoire ne correspond à « " + query + " ».";
    }
  }

  function ask(query) {
    var number = ++asked;
    if (controller) { controller.abort(); }
    controller = window.AbortController ? new AbortController() : null;
    var url = "/api/v1/search?q=" + encodeURIComponent(query) + "&limit=" + LIMIT;
    fetch(url, { headers: { Accept: "application/json" }, signal: controller ? controller.signal : undefined })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (body) {
        if (number === asked && input.value.trim() === query) { show(body.items || [], query); }
      })
      .catch(function () {
        if (number === asked) { close(); }  // the form still works: Enter goes to /recherche
      });
  }

  function go(option) {
    var url = option && option.getAttribute("data-url");
    if (url) { window.location.assign(url); }
  }

  input.addEventListener("input", function () {
    if (timer) { clearTimeout(timer); }
    var query = input.value.trim();
    if (query.length < MIN_CHARS) {
      asked++;  // an answer still on its way is no longer wanted
      shownFor = null;
      close();
      status.textContent = "";
      return;
    }
    timer = setTimeout(function () { ask(query); }, DELAY_MS);
  });

  input.addEventListener("keydown", function (event) {
    var count = options().length;
    if (event.key === "ArrowDown" || event.key === "Down") {
      if (!count) { return; }
      event.preventDefault();
      if (list.hidden) { open(); setActive(0); return; }
      setActive(active + 1 >= count ? 0 : active + 1);
    } else if (event.key === "ArrowUp" || event.key === "Up") {
      if (!count) { return; }
      event.preventDefault();
      if (list.hidden) { open(); setActive(count - 1); return; }
      setActive(active <= 0 ? count - 1 : active - 1);
    } else if (event.key === "Enter") {
      if (!list.hidden && active >= 0) {
        event.preventDefault();
        go(options()[active]);
      }  // else: the form submits to /recherche
    } else if (event.key === "Escape" || event.key === "Esc") {
      if (!list.hidden) {
        event.preventDefault();
        close();
      }
    }
  });

  // A press on an option must not blur the input first (the list would close under it).
  list.addEventListener("mousedown", function (event) { event.preventDefault(); });
  list.addEventListener("click", function (event) {
    var target = event.target;
    while (target && target !== list && !(target.classList && target.classList.contains("suggestion"))) {
      target = target.parentNode;
    }
    if (target && target !== list) { go(target); }
  });
  input.addEventListener("blur", close);
  input.addEventListener("focus", function () {
    if (shownFor !== null && shownFor === input.value.trim()) { open(); }
  });
})();
