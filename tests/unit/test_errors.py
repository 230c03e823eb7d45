from clipline.api.errors import HTTP_STATUS_BY_CODE, http_status_for
from clipline.domain import errors


def test_codes_are_upper_snake_case():
    for code in errors.all_error_codes():
        assert code.isupper() and " " not in code, code


def test_every_mapped_code_exists():
    assert set(HTTP_STATUS_BY_CODE) <= errors.all_error_codes()


def test_request_errors_are_4xx_and_unknown_codes_500():
    assert http_status_for("INVALID_TIME_RANGE") == 400
    assert http_status_for("JOB_NOT_FOUND") == 404
    assert http_status_for("JOB_NOT_READY") == 409
    assert http_status_for("RESULT_EXPIRED") == 410
    assert http_status_for("SOMETHING_ELSE") == 500


def test_state_machine_error_names_map_to_codes():
    # Given the names Step Functions reports (Lambda errorType is the class name)
    assert errors.code_for_error_name("SourceNotFoundError") == "SOURCE_NOT_FOUND"
    assert errors.code_for_error_name("JobTimeoutError") == "JOB_TIMEOUT"
    assert errors.code_for_error_name("States.Timeout") == "CLIP_TIMEOUT"
    # Unknown names (a bug, a runtime crash) never leak as codes
    assert errors.code_for_error_name("KeyError") == "INTERNAL_ERROR"
    assert errors.code_for_error_name("Lambda.ServiceException") == "INTERNAL_ERROR"
