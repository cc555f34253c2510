/* White-box: the JSON merge patch (RFC 7386) that puts an engine's pod_customize() patch
 * onto the runner's pod spec, checked with the RFC's own examples (appendix A). */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "reconcile/rec.h"
#include "tap.h"

static void check(const char *target, const char *patch, const char *want)
{
	json_object *t = json_tokener_parse(target), *p = json_tokener_parse(patch);
	json_object *w = json_tokener_parse(want);
	int ret = bop__rec_merge_patch(&t, p);

	ok(ret == 0 && json_object_equal(t, w), "%s + %s = %s (got %s)", target, patch, want,
		json_object_to_json_string_ext(t, JSON_C_TO_STRING_PLAIN));
	json_object_put(t);
	json_object_put(p);
	json_object_put(w);
}

int main(void)
{
	check("{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
	check("{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}");
	check("{\"a\":\"b\"}", "{\"a\":null}", "{}");
	check("{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}");
	check("{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
	check("{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}");
	check("{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}", "{\"a\":{\"b\":\"d\"}}");
	check("{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}");
	check("[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]");
	check("{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]");
	check("{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}");
	check("[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}");
	check("{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}");
	/* what an engine would do to the pod spec */
	check("{\"containers\":[{\"name\":\"runner\"}],\"terminationGracePeriodSeconds\":60,"
		"\"enableServiceLinks\":false}",
		"{\"hostAliases\":[{\"ip\":\"10.0.0.9\"}],\"terminationGracePeriodSeconds\":300,"
		"\"enableServiceLinks\":null}",
		"{\"containers\":[{\"name\":\"runner\"}],\"terminationGracePeriodSeconds\":300,"
		"\"hostAliases\":[{\"ip\":\"10.0.0.9\"}]}");
	return done_testing();
}
