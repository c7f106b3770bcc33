"""Teacher backends behind one interface (`base.Teacher`), and the pool the agents draw from."""

from engine.teachers.base import Generation, Message, ModelIdentity, SamplingParams, Teacher
from engine.teachers.pool import TeacherPool, build_teacher

__all__ = ["Generation", "Message", "ModelIdentity", "SamplingParams", "Teacher", "TeacherPool", "build_teacher"]
