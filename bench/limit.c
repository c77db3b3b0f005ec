/*
 * limit.c - the limits the benchmark compares the project with: the same
 * calls (PUT on the retry path, the same headers, an empty body, the answer's
 * body checked) on raw libcurl, with nothing else around them.
 *
 *   limit easy  URL COUNT [CA_FILE]               one easy handle, reused
 *   limit multi URL COUNT CONCURRENCY [CA_FILE]   the multi interface
 *
 * Prints "calls/s <figure>" (and exits 1 if an answer was not the expected).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

typedef struct {
  char body[256];
  size_t len;
} answer;

static size_t on_body(char *data, size_t size, size_t count, void *ud) {
  answer *a = ud;
  size_t n = size * count;
  if (n > sizeof a->body - 1 - a->len) return 0;
  memcpy(a->body + a->len, data, n);
  a->len += n;
  return n;
}

static int answered(CURL *easy, answer *a) {
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  a->body[a->len] = '\0';
  return status == 200 && strstr(a->body, "\"success\":true") != NULL;
}

static CURL *handle(const char *url, struct curl_slist *headers, const char *ca_file, answer *a) {
  CURL *easy = curl_easy_init();
  curl_easy_setopt(easy, CURLOPT_URL, url);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, "PUT");
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, "");
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, (void *)a);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, (void *)a);
  /* the project's own User-Agent when given: the same request bytes */
  curl_easy_setopt(easy, CURLOPT_USERAGENT,
                   getenv("LIMIT_USER_AGENT") ? getenv("LIMIT_USER_AGENT") : "limit/1");
  if (ca_file) curl_easy_setopt(easy, CURLOPT_CAINFO, ca_file);
  return easy;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  struct curl_slist *headers = NULL;
  const char *mode, *url, *ca_file;
  long count, done = 0, started = 0, concurrency = 1, i;
  int failed = 0;
  double began;
  if (argc < 4) {
    fprintf(stderr, "usage: limit easy|multi URL COUNT [CONCURRENCY] [CA_FILE]\n");
    return 2;
  }
  mode = argv[1];
  url = argv[2];
  count = atol(argv[3]);
  if (strcmp(mode, "multi") == 0) {
    if (argc < 5) return 2;
    concurrency = atol(argv[4]);
    ca_file = argc > 5 ? argv[5] : NULL;
  } else {
    ca_file = argc > 4 ? argv[4] : NULL;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  headers = curl_slist_append(headers, "Accept: application/json");
  headers = curl_slist_append(headers, "X-Auth-Token: bench-token-not-a-secret");
  headers = curl_slist_append(headers, "Content-Type: application/json"); /* as the project sends */
  began = now();
  if (strcmp(mode, "easy") == 0) {
    answer a;
    CURL *easy = handle(url, headers, ca_file, &a);
    for (i = 0; i < count; i++) {
      a.len = 0;
      if (curl_easy_perform(easy) != CURLE_OK || !answered(easy, &a)) failed = 1;
    }
    curl_easy_cleanup(easy);
  } else {
    CURLM *multi = curl_multi_init();
    CURL **easies = calloc((size_t)concurrency, sizeof *easies);
    answer *answers = calloc((size_t)concurrency, sizeof *answers);
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, concurrency);
    for (i = 0; i < concurrency && started < count; i++, started++) {
      easies[i] = handle(url, headers, ca_file, &answers[i]);
      curl_multi_add_handle(multi, easies[i]);
    }
    while (done < count) {
      int running, queued;
      CURLMsg *msg;
      curl_multi_perform(multi, &running);
      while ((msg = curl_multi_info_read(multi, &queued)) != NULL) {
        answer *a;
        if (msg->msg != CURLMSG_DONE) continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&a);
        if (msg->data.result != CURLE_OK || !answered(msg->easy_handle, a)) failed = 1;
        done++;
        curl_multi_remove_handle(multi, msg->easy_handle);
        if (started < count) {
          a->len = 0;
          curl_multi_add_handle(multi, msg->easy_handle);
          started++;
        }
      }
      if (done < count) curl_multi_poll(multi, NULL, 0, 1000, NULL);
    }
    for (i = 0; i < concurrency; i++)
      if (easies[i]) curl_easy_cleanup(easies[i]);
    curl_multi_cleanup(multi);
    free(easies);
    free(answers);
  }
  printf("calls/s %.1f\n", (double)count / (now() - began));
  curl_slist_free_all(headers);
  curl_global_cleanup();
  if (failed) fprintf(stderr, "limit: an answer was not {\"success\":true}\n");
  return failed;
}
