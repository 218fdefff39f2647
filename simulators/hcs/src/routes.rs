//! The route table of the one HTTPS listener.

use axum::Router;
use axum::routing::{get, post};

use crate::state::Sh;
use crate::{catalog, create, ecs, elb, elb_pool, evs, iam, jobs, power};

fn ecs_routes(r: Router<Sh>, v: &str) -> Router<Sh> {
    let base = format!("/{v}/{{pid}}/cloudservers");
    r.route(&base, post(create::create_server))
        .route(&format!("{base}/detail"), get(ecs::list_servers))
        .route(&format!("{base}/flavors"), get(ecs::list_flavors))
        .route(&format!("{base}/limits"), get(ecs::get_limits))
        .route(&format!("{base}/delete"), post(power::delete_servers))
        .route(&format!("{base}/action"), post(power::server_action))
        .route(&format!("{base}/{{id}}"), get(ecs::get_server))
        .route(&format!("/{v}/{{pid}}/jobs/{{id}}"), get(jobs::get_job))
}

fn elb_routes(r: Router<Sh>) -> Router<Sh> {
    let b = "/v3/{pid}/elb";
    r.route(&format!("{b}/loadbalancers"), post(elb::lb_create).get(elb::lb_list))
        .route(
            &format!("{b}/loadbalancers/{{id}}"),
            get(elb::lb_get).delete(elb::lb_delete),
        )
        .route(&format!("{b}/loadbalancers/{{id}}/statuses"), get(elb::lb_statuses))
        .route(
            &format!("{b}/listeners"),
            post(elb::listener_create).get(elb::listener_list),
        )
        .route(
            &format!("{b}/listeners/{{id}}"),
            get(elb::listener_get).delete(elb::listener_delete),
        )
        .route(
            &format!("{b}/pools"),
            post(elb_pool::pool_create).get(elb_pool::pool_list),
        )
        .route(
            &format!("{b}/pools/{{id}}"),
            get(elb_pool::pool_get).delete(elb_pool::pool_delete),
        )
        .route(
            &format!("{b}/pools/{{pool}}/members"),
            post(elb_pool::member_create).get(elb_pool::member_list),
        )
        .route(
            &format!("{b}/pools/{{pool}}/members/{{id}}"),
            get(elb_pool::member_get).delete(elb_pool::member_delete),
        )
        .route(
            &format!("{b}/healthmonitors"),
            post(elb_pool::monitor_create).get(elb_pool::monitor_list),
        )
        .route(
            &format!("{b}/healthmonitors/{{id}}"),
            get(elb_pool::monitor_get).delete(elb_pool::monitor_delete),
        )
}

pub(crate) fn router(shared: Sh) -> Router {
    let r = Router::new()
        .route("/v3/auth/tokens", post(iam::create_token).get(iam::validate_token))
        .route("/v3/projects", get(iam::list_projects))
        .route("/v2/cloudimages", get(catalog::list_images))
        .route("/v1/{pid}/subnets", get(catalog::list_subnets))
        .route("/v1/{pid}/subnets/{id}", get(catalog::get_subnet))
        .route("/v1/vpcs/{id}", get(catalog::get_vpc_global))
        .route("/v1/{pid}/vpcs/{id}", get(catalog::get_vpc))
        .route("/v2/{pid}/cloudvolumes/detail", get(evs::list_volumes))
        .route(
            "/v2/{pid}/cloudvolumes/{id}",
            get(evs::get_volume).delete(evs::delete_volume),
        );
    let r = ecs_routes(ecs_routes(r, "v1"), "v1.1");
    elb_routes(r).fallback(|| async { iam::not_found() }).with_state(shared)
}
